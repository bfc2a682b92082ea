"""Plain PyTorch training loops; they know nothing of Ray."""
