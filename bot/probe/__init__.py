"""Evidence from the broker: ask a trader's (or an automation's) Client Portal Gateway / IBeam,
or TWS / IB Gateway API socket, whether the session is alive — without logging in."""
