"""Transports take a plan to a target and bring its events back.

A transport has ``host``, ``facts()`` and ``run(plan, mode=..., fail_fast=...,
emit=...) -> events``. The local one runs the agent in-process; the SSH one ships
the agent and the plan to a remote ``python3``. Library errors become converge
errors here, at the boundary.
"""
