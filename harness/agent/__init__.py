"""The fault agent: host-side faults done on a node the harness does not run on.

One small program (`python -m harness.agent`) in an image of its own, run privileged with the
node's PID and network namespaces (a DaemonSet on Kubernetes). The harness runs one command in
it per action (`call`, through the API server's exec), and the agent applies or reverts the
fault with the same fault modules the harness uses on its own host, so both paths measure the
same thing. The agent's main process (`serve`) keeps its own undo log and reverts a fault at
its lease's deadline, and everything outstanding when it is stopped, so a dead harness leaves
nothing behind. Where pod addresses are not routable from the harness, the agents probe the
run's instances on their nodes too (`probes.via`), and read the containers' start and exit
instants there for the run's events (`host_via: agent`). Design and figures: docs/AGENT.md.
"""
