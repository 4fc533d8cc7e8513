"""Test helpers shared by several test files (fakes of outside services, fixtures' building blocks)."""
