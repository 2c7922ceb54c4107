"""Processes and signals (no paddle at import, no model, no storage, no command line).

interrupts.py turns SIGTERM into Ctrl-C and holds both back for a folder swap;
parent_death.py makes a child die with rec; launch.py starts data-parallel training
processes through Paddle's launcher. Rule: process code knows errors and console only.
"""
