"""Every text table and report the package prints, the JSON and structure writers of
explorations, and the plots."""
