"""Pre-trade risk: every order intent is checked here before it reaches a venue."""
