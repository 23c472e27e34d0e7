"""Chain access: network config, artifacts, the Chain client, deployment, the anvil dev node."""
