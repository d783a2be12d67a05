"""Capture input: pcap, pcapng (optionally gzip-compressed), standard input and live interfaces."""
