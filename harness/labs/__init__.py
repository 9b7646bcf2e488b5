"""Labs: multi-node clusters built on this one machine (host plumbing shared by every kind)."""
