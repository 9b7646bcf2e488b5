"""Kubernetes on this machine: built from its own Go module (build), certificates (pki),
kubeconfigs (kubeconfig) and a multi-node lab (lab) for the Kubernetes target."""
