"""The job API: submit tasks by contract name, follow their state and progress, revoke them."""
