"""Reports people look at: the dataset profile (data_profile.py)."""
