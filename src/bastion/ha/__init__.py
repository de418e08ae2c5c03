"""High availability: the leader lease and fencing, the warm standby that tails the
journal, and the operator's ``bastion ha`` commands."""
