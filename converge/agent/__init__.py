"""What runs on the target: the engine, system access, facts. Standard library only,
Python 3.8 compatible, because this package is shipped to remote machines."""
