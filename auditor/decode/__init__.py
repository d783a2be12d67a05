"""Link, IP and transport decoding, defragmentation and TCP reassembly, without scapy objects."""
