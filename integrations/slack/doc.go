// Package slack connects msspbot to Slack: it renders bot.Messages as Block
// Kit, sends them through the Web API (bot.Notifier), receives slash
// commands and button clicks over Socket Mode or signed HTTP requests, and
// turns them into bot.Commands for one executor.
//
// Everything that talks to Slack goes through slack-go; this package only
// adds what the library leaves to its users: request replay protection,
// the 3-second answer budget, error classification for the dispatcher, and
// the guard that keeps SOC channels from being posted to once they are
// shared with another organisation.
package slack
