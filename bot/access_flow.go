package bot

import "context"

// Onboarding is built by the access-grant work; until then these answer
// clearly instead of pretending.

func (s *Service) cmdOnboard(ctx context.Context, cmd Command, sc scope, req Request) (Message, error) {
	return Message{}, Errorf(EUNAVAILABLE, "Onboarding from chat is not available yet; declare the tenant in the config.")
}

func (s *Service) cmdOffboard(ctx context.Context, cmd Command, sc scope) (Message, error) {
	return Message{}, Errorf(EUNAVAILABLE, "Offboarding from chat is not available yet.")
}

func (s *Service) clickAccessConfirm(ctx context.Context, cmd Command, sc scope) Message {
	return textMessage("Not available yet.")
}

func (s *Service) clickDecline(ctx context.Context, cmd Command, sc scope) Message {
	return textMessage("Not available yet.")
}

func (s *Service) clickGrant(ctx context.Context, cmd Command, sc scope) Message {
	return textMessage("Open the link to grant access.")
}
