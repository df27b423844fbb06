package main

import (
	"context"
	"errors"
	"flag"
)

// errNoVolumes is what every volume sub-command answers: the rebuilt
// ciao-controller has no block storage API (controller.md §6.4) yet.
var errNoVolumes = errors.New("volumes are not available: this ciao-controller has no block storage (volume) API yet, so nothing was done")

const volumeNote = "NOT AVAILABLE: the controller has no volume API yet"

// volumeCommand keeps the 2016 volume grammar (cli.md §6.12) so that
// -help and completion work, but every sub-command fails with
// errNoVolumes without contacting anything.
func volumeCommand() command {
	sub := func(name, desc string, flags func(fs *flag.FlagSet)) subcommand {
		return subcommand{name: name, desc: desc + " (" + volumeNote + ")", local: true,
			setup: func(fs *flag.FlagSet) func(context.Context, *app) error {
				flags(fs)
				return func(context.Context, *app) error { return errNoVolumes }
			}}
	}
	vol := func(fs *flag.FlagSet) { fs.String("volume", "", "Volume UUID") }
	return command{name: "volume", note: "NOTE: " + errNoVolumes.Error() + ".\nThe sub-commands and flags are those of the 2016 ciao-cli; each one fails without contacting anything.", subs: []subcommand{
		sub("add", "Create a new block storage volume", func(fs *flag.FlagSet) {
			fs.Int("size", 1, "Size of the volume in GB")
			fs.String("name", "", "Volume name")
			fs.String("description", "", "Volume description")
			fs.String("source", "", "Source volume UUID to copy")
		}),
		sub("list", "List all volumes", func(*flag.FlagSet) {}),
		sub("show", "Show information about a volume", vol),
		sub("update", "Updates a volume", func(fs *flag.FlagSet) {
			vol(fs)
			fs.String("name", "", "New volume name")
			fs.String("description", "", "New volume description")
		}),
		sub("delete", "Deletes a volume", vol),
		sub("attach", "Attaches a volume to an instance", func(fs *flag.FlagSet) {
			vol(fs)
			fs.String("instance", "", "Instance UUID")
			fs.String("mountpoint", "/mnt", "Mount point")
			fs.String("mode", "rw", "Access mode")
		}),
		sub("detach", "Detaches a volume from an instance", vol),
	}}
}
