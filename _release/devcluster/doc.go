// Package devcluster brings up, supervises and tears down a whole Ciao
// cluster on one machine: the README's first command.
//
// Up (as root, idempotent) installs missing OS packages through
// osprepare, starts Docker and imports the busybox image
// (scripts/start-dockerd.sh, scripts/test-image.sh), takes the VM kernel
// and initramfs of scripts/build-vm-image.sh, builds the daemons, the CLI
// and ciao-devcluster into <state>/bin, makes a CA and one certificate per
// SSNTP role plus the API's HTTPS pair, writes configuration.yaml, creates
// the identities admin (cloud admin) and demo (a tenant) with the
// controller's -create-user, writes three workloads (a busybox
// container, a small VM, a bare-metal process) and the CNCI as the 2016
// workload definition files the controller seeds from
// (-tables_init_path, -workloads_path), starts the scheduler, the
// controller and two launchers (a compute node and a network node) and
// launches one instance of each workload as the demo tenant through
// ciao-cli.
//
// Tenant networking is on wherever its pieces exist (Config.Network
// "auto": the controller's -network, ip, dnsmasq; /dev/vhost-net is not
// needed): the nodes' tenant networks then live in network
// namespaces joined by an underlay bridge (network.go), the network-node
// launcher runs CNCIs as namespaces with ciao-cnci-agent, and nothing is
// routed to or from the host's interfaces.
//
// The daemons run as systemd units (ciao-dev-*.service, ciao-dev.target)
// when systemd is the init system, and otherwise under Supervise, run by
// `ciao-devcluster supervise` in the background: a daemon that exits for
// any reason is started again after RestartDelay. Either way each daemon
// logs to <state>/logs/<name>.log.
//
// Everything lives in the state directory (default /var/lib/ciao-dev);
// what is made outside it (unit files) and the host's interfaces before
// the first Up are in <state>/manifest.json. Down stops the daemons,
// deletes every instance with the launchers' -hard-reset, removes the
// state directory and the units, and checks with Leftovers that no
// process, container, mount, interface, cgroup or file remains.
package devcluster
