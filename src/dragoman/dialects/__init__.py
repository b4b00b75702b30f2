"""What each wire dialect and each server speaking it accepts (data, no I/O)."""
