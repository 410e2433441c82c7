"""dqd daemon: watch, queue, work, schedule."""
