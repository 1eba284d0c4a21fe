"""The load balancer behind the floating address (LVS/ldirectord's and keepalived's
virtual_server job, on nftables):

- model.py: the virtual services, their real servers and checks, as configured;
- health.py: a real server's health from its checks' results (rise/fall);
- slots.py: which real server each slot of a service sends new connections to;
- nft.py: the ruleset made of those, and the smallest transaction from one to the next;
- apply.py: `nft -f` and `nft -j list`, the only IO here.
"""
