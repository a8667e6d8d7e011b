"""The singleton scheduler: seed 000's Beat schedule, sent by contract name."""
