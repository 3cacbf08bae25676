"""What the channel knows about each customer session: who owns it, its send budget, recalls."""
