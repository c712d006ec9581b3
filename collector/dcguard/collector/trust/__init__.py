"""Trust: the CA, one-time tokens, the certificate registry and the Enroll/Renew service."""
