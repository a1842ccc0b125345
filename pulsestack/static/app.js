// The PulseStack web app (placeholder until the client lands).
