"""What the chapters show: each figure and each verdict sentence as a tested function."""
