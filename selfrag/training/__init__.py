"""Supervised fine-tuning for the critic and the generator: masked SFT datasets and a resumable accelerate loop."""
