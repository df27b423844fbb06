// Package networking gives every Ciao tenant its own private L2 network
// per tenant subnet, spanning all the nodes where the tenant has
// instances (the 2016 libsnnet; /work/shared/spec/networking.md).
//
// # Topology
//
// A compute node (ComputeNode) has, per tenant subnet present on it, one
// bridge (sbr_…, no address), one tunnel (sgt_…) from that bridge to the
// tenant's concentrator (CNCI), and one tap (VM) or veth pair (container,
// svn_…/svp_…) per instance. The tunnel key is the subnet key: the subnet's
// network address read as a little-endian uint32 (SubnetKey). Links carry
// aliases (br_…, gre_…, vnic_…##<ip>) that are the only persistent state: a
// new ComputeNode or Cnci rebuilds itself from them, so a restarted agent
// finds its networks as it left them.
//
// The CNCI (Cnci) has per tenant subnet a bridge owning the gateway address
// (network+1) with a dnsmasq that leases each instance its fixed address
// (MAC 02:00:<ip bytes> → ip, nothing else), the tunnel side, and with
// Firewall: masquerade through its compute link, IP forwarding, SSH port
// forwarding (33000+o3·256+o4 → instance:22) and public-IP mapping.
//
// # Tunnels
//
// VXLAN is the default (spec §12): VNI = subnet key (< 2^24, else the
// subnet is refused), UDP port 4789. A compute node's tunnel has the CNCI
// as its remote. The CNCI has one VXLAN device per subnet (the kernel
// allows one per VNI and port) whose flood list (all-zero FDB entries) holds
// every compute node of the subnet. Compute node to compute node traffic
// goes through the CNCI bridge, so its tunnel port is in hairpin mode; as
// the flood list includes the sender, compute nodes do not learn on their
// tunnel port (a reflected broadcast would otherwise move a local MAC onto
// the tunnel). GRE (gretap, key = subnet key, one link per compute node on
// the CNCI) is kept as a configuration choice for kernels with ip_gre.
//
// # Namespaces
//
// Config.Netns points the package at a network namespace other than the
// process's: netlink works through a handle bound to it, taps are made on a
// thread switched into it, and commands (dnsmasq, iptables, sysctl) run
// through nsenter. This is how tests model several nodes on one machine,
// and how a network node runs CNCIs as namespaces rather than VMs.
//
// # Errors
//
// Bad input (ErrBadConfig, ErrNoConcentrator, ErrDuplicateVnic,
// ErrKeyMismatch) is refused before anything is made; a kernel failure
// half-way removes what the call made. Every operation of a ComputeNode or
// Cnci is serialised by its one mutex.
package networking
