package testenv

// Kill stops this Alertmanager with SIGKILL, as a crashed member of a
// cluster: its peers are not told.
func (a *Alertmanager) Kill() { a.proc.Kill() }
