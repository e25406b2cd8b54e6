# Runs first at every reset. Kept short on purpose: main.py starts the agent.
import gc
gc.collect()
