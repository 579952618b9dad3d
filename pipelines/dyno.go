package pipelines

// DynoScript is the shell program that starts a Procfile command the way
// Heroku starts a dyno, for every buildpack: in the app's directory dir
// (a path the shell reads literally, e.g. "." or "local/app"), with HOME
// set to it, the slug's bin/ first on PATH (Heroku's Go buildpack installs
// binaries there and Procfiles name them bare, `web: myapp`), every
// .profile.d/*.sh in the slug sourced, then the app's own .profile, and
// the command last, in that same shell so what the scripts set is there.
// It is run as `sh -c DynoScript(dir) sh COMMAND`: the command is the
// script's first argument, never spliced into its text.
func DynoScript(dir string) string {
	return `cd ` + dir + ` || exit 126
HOME=$PWD
PATH="$HOME/bin:$PATH"
export HOME PATH
for f in "$HOME"/.profile.d/*.sh; do
	if [ -r "$f" ]; then . "$f"; fi
done
unset f
if [ -r "$HOME/.profile" ]; then . "$HOME/.profile"; fi
eval "$1"`
}

// DynoArgs are the arguments that run command as DynoScript(dir) does.
func DynoArgs(dir, command string) []string {
	return []string{"sh", "-c", DynoScript(dir), "sh", command}
}
