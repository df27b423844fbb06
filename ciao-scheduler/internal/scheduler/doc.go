// Package scheduler is the SSNTP side of ciao-scheduler: the one server of
// a Ciao cluster, to which controllers, launchers (compute and network
// nodes) and CNCI agents connect. It keeps the nodes' last reported state,
// places each START on a node with package placement, relays every other
// frame by the 2016 routing policy (scheduler.md §5, ssntp.md §9.3) and
// tells controllers about nodes coming and going.
//
// # State
//
// Everything is in memory and rebuilt from the launchers' READY frames
// after a restart; nothing is saved. Two locks:
//
//   - Scheduler.mu guards the node pools (placement state: each node's
//     figures, the last node used per pool). START decisions and STATUS
//     updates take it briefly; nothing blocking happens under it.
//   - Scheduler.members serialises connects and disconnects and guards
//     the controller list, so that NodeConnected/NodeDisconnected events
//     reach each controller in the order the nodes came and went. It is
//     held while those events are written, never by the START path.
//
// The master controller (the only one whose commands are obeyed) is also
// published in an atomic pointer so the START path needs no lock to check
// it.
//
// # Where frames are handled
//
// The ssntp server calls forwarders and notifications on the reading
// goroutine of the sender's connection, in wire order. A START is decoded
// (fastyaml.go), placed and written to the chosen node on the controller's
// goroutine; READY/FULL update the pools on the node's goroutine.
//
// # Departures from the 2016 scheduler (scheduler.md "Defect")
//
//   - The last-used index of each pool is guarded by mu.
//   - Network nodes are placed like compute nodes (ordered list, circular
//     first fit after the last one used); no node is ever left locked.
//   - An unreadable START is answered with StartFailure invalid_payload or
//     invalid_data instead of being dropped; STOP, RESTART, DELETE and the
//     volume commands likewise get their failure with the same reasons.
//   - A START whose chosen node has just gone is placed again on another
//     node instead of vanishing.
//   - A controller that connects is told about every node already there.
//   - AttachVolumeFailure and DetachVolumeFailure reach the controllers,
//     AssignPublicIP and ReleasePublicIP reach the CNCI named in them.
package scheduler
