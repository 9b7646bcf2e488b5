"""What only faults use to act on an instance from the host: tagged iptables and tc in its
network namespace (netfaults), the latency proxy run inside it (tcpproxy), and stress-ng in its
cgroups (stress). Targets and the runner never import these."""
