"""Cloud discovery: firewall and proxy traffic logs in; cloud-app usage, risk and block scripts out."""
