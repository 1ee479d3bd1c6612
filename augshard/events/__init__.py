"""What shards tell: the event stream, its fold into shard status, the monitor and the terminal/script output."""
