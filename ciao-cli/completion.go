package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// completionInstall tells how to install the completion scripts; it is
// part of the global -help and of "completion bash|zsh -help".
const completionInstall = `Shell completion: the script is generated from the command table, so it always
matches this binary. To enable it for the current shell:

	bash:  source <(ciao-cli completion bash)
	zsh:   source <(ciao-cli completion zsh)   (after compinit)

To install it permanently, add that line to ~/.bashrc or ~/.zshrc, or save
the output as /etc/bash_completion.d/ciao-cli (bash) or as _ciao-cli in a
directory of your $fpath (zsh).`

func completionCommand() command {
	return command{name: "completion", subs: []subcommand{
		{name: "bash", local: true, desc: "Print a bash completion script\n\n" + completionInstall,
			setup: completionSetup(writeBashCompletion)},
		{name: "zsh", local: true, desc: "Print a zsh completion script\n\n" + completionInstall,
			setup: completionSetup(writeZshCompletion)},
	}}
}

func completionSetup(write func(io.Writer, []compCommand) error) func(*flag.FlagSet) func(context.Context, *app) error {
	return func(*flag.FlagSet) func(context.Context, *app) error {
		return func(_ context.Context, a *app) error {
			return write(a.stdout, completionModel())
		}
	}
}

// compFlag is one flag as completion sees it.
type compFlag struct {
	name  string
	value bool // takes a value (not a boolean flag)
}

type compSub struct {
	name  string
	flags []compFlag
}

type compCommand struct {
	name string
	subs []compSub
}

// flagsOf lists the flags defined on fs, sorted by name.
func flagsOf(fs *flag.FlagSet) []compFlag {
	var fl []compFlag
	fs.VisitAll(func(f *flag.Flag) {
		b, ok := f.Value.(interface{ IsBoolFlag() bool })
		fl = append(fl, compFlag{name: f.Name, value: !(ok && b.IsBoolFlag())})
	})
	return fl
}

// subFlags returns the flags a sub-command defines, by running its setup
// on a scratch flag set (setup only defines flags).
func subFlags(s subcommand) []compFlag {
	fs := flag.NewFlagSet(s.name, flag.ContinueOnError)
	s.setup(fs)
	return flagsOf(fs)
}

func globalFlagList() []compFlag {
	fs := flag.NewFlagSet("ciao-cli", flag.ContinueOnError)
	globalFlags(fs, &config{})
	return flagsOf(fs)
}

// completionModel is the command table reduced to names and flags,
// sorted.
func completionModel() []compCommand {
	var cs []compCommand
	for _, c := range commands() {
		cc := compCommand{name: c.name}
		for _, s := range c.subs {
			cc.subs = append(cc.subs, compSub{name: s.name, flags: subFlags(s)})
		}
		sort.Slice(cc.subs, func(i, j int) bool { return cc.subs[i].name < cc.subs[j].name })
		cs = append(cs, cc)
	}
	return cs
}

// shellWord matches the names that may appear unquoted in the scripts.
var shellWord = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func checkNames(cs []compCommand, global []compFlag) error {
	check := func(n string) error {
		if !shellWord.MatchString(n) {
			return fmt.Errorf("completion: name %q cannot be used in a shell script", n)
		}
		return nil
	}
	for _, f := range global {
		if err := check(f.name); err != nil {
			return err
		}
	}
	for _, c := range cs {
		if err := check(c.name); err != nil {
			return err
		}
		for _, s := range c.subs {
			if err := check(s.name); err != nil {
				return err
			}
			for _, f := range s.flags {
				if err := check(f.name); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func flagNames(fl []compFlag) string {
	n := make([]string, len(fl))
	for i, f := range fl {
		n[i] = f.name
	}
	return strings.Join(n, " ")
}

// valuePatterns returns the case patterns "<context>/<flag>" of the flags
// that take a value; the context is "" for global options and
// "<command>_<sub-command>" otherwise.
func valuePatterns(cs []compCommand, global []compFlag) []string {
	var p []string
	for _, f := range global {
		if f.value {
			p = append(p, "/"+f.name)
		}
	}
	for _, c := range cs {
		for _, s := range c.subs {
			for _, f := range s.flags {
				if f.value {
					p = append(p, c.name+"_"+s.name+"/"+f.name)
				}
			}
		}
	}
	return p
}

// The scan shared by both scripts: walk the words before the cursor,
// skipping flags and their values, to find the command and sub-command
// (Go's flag package stops at the first non-flag, so global options come
// before the command and sub-command flags after the sub-command).
const scanBody = `	for ((i = %[1]s; i < %[2]s; i++)); do
		w="${words[i]}"
		if ((val)); then
			val=0
			continue
		fi
		case "$w" in
		-*=*) ;;
		-*)
			n="${w#-}"
			n="${n#-}"
			if _ciao_cli_takes_value "$ctx" "$n"; then val=1; fi
			;;
		*)
			if [[ -z $cmd ]]; then
				cmd="$w"
			elif [[ -z $sub ]]; then
				sub="$w"
				ctx="${cmd}_${sub}"
			fi
			;;
		esac
	done
`

func writeScript(w io.Writer, cs []compCommand, shell string) error {
	global := globalFlagList()
	if err := checkNames(cs, global); err != nil {
		return err
	}
	var b strings.Builder
	if shell == "zsh" {
		b.WriteString("#compdef ciao-cli\n")
	}
	fmt.Fprintf(&b, "# %s completion for ciao-cli, generated by \"ciao-cli completion %s\".\n", shell, shell)
	fmt.Fprintf(&b, "# Enable it with: source <(ciao-cli completion %s)\n\n", shell)

	b.WriteString("# _ciao_cli_takes_value CONTEXT FLAG: does FLAG take a value?\n_ciao_cli_takes_value() {\n\tcase \"$1/$2\" in\n")
	if p := valuePatterns(cs, global); len(p) > 0 {
		fmt.Fprintf(&b, "\t%s) return 0 ;;\n", strings.Join(p, " | "))
	}
	b.WriteString("\tesac\n\treturn 1\n}\n\n")

	// _ciao_cli_words CMD SUB CUR: the candidates, one a line.
	b.WriteString("# _ciao_cli_candidates COMMAND SUB-COMMAND CUR: sets names and kind\n# (\"word\" or \"flag\").\n")
	b.WriteString("_ciao_cli_candidates() {\n\tkind=word\n\tcase \"$1/$2\" in\n")
	var cmdNames []string
	for _, c := range cs {
		cmdNames = append(cmdNames, c.name)
	}
	fmt.Fprintf(&b, "\t/)\n\t\tif [[ $3 == -* ]]; then\n\t\t\tkind=flag\n\t\t\tnames=%q\n\t\telse\n\t\t\tnames=%q\n\t\tfi\n\t\t;;\n",
		flagNames(global), strings.Join(cmdNames, " "))
	for _, c := range cs {
		var subNames []string
		for _, s := range c.subs {
			subNames = append(subNames, s.name)
		}
		fmt.Fprintf(&b, "\t%s/) names=%q ;;\n", c.name, strings.Join(subNames, " "))
		for _, s := range c.subs {
			fmt.Fprintf(&b, "\t%s/%s)\n\t\tkind=flag\n\t\tnames=%q\n\t\t;;\n", c.name, s.name, flagNames(s.flags))
		}
	}
	b.WriteString("\t*) names= ;;\n\tesac\n}\n\n")

	b.WriteString("_ciao_cli() {\n")
	if shell == "bash" {
		b.WriteString("\tlocal -a words=(\"${COMP_WORDS[@]}\")\n\tlocal cur=\"${COMP_WORDS[COMP_CWORD]}\"\n")
	} else {
		b.WriteString("\tlocal cur=\"${words[CURRENT]}\"\n")
	}
	b.WriteString("\tlocal cmd= sub= ctx= w n i val=0 names kind dash=-\n")
	if shell == "bash" {
		b.WriteString("\tCOMPREPLY=()\n")
		fmt.Fprintf(&b, scanBody, "1", "COMP_CWORD")
	} else {
		fmt.Fprintf(&b, scanBody, "2", "CURRENT")
	}
	b.WriteString("\t# The cursor is on a flag's value: nothing to offer.\n")
	b.WriteString("\tif ((val)); then return 1; fi\n")
	b.WriteString("\t_ciao_cli_candidates \"$cmd\" \"$sub\" \"$cur\"\n")
	b.WriteString("\tif [[ -z $names ]]; then return 1; fi\n")
	b.WriteString("\tif [[ $kind == flag && $cur == --* ]]; then dash=--; fi\n")
	if shell == "bash" {
		b.WriteString(`	if [[ $kind == flag ]]; then
		COMPREPLY=($(compgen -P "$dash" -W "$names" -- "${cur#"$dash"}"))
	else
		COMPREPLY=($(compgen -W "$names" -- "$cur"))
	fi
}

complete -F _ciao_cli ciao-cli
`)
	} else {
		b.WriteString(`	local -a cands
	cands=(${=names})
	if [[ $kind == flag ]]; then
		cands=("${cands[@]/#/$dash}")
	fi
	compadd -- "${cands[@]}"
}

if [[ "${funcstack[1]}" == _ciao-cli ]]; then
	_ciao_cli "$@"
else
	compdef _ciao_cli ciao-cli
fi
`)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeBashCompletion(w io.Writer, cs []compCommand) error { return writeScript(w, cs, "bash") }
func writeZshCompletion(w io.Writer, cs []compCommand) error  { return writeScript(w, cs, "zsh") }
