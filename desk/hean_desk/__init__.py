"""The trading desk: `kubectl hean` and the data access the web console shares with it.

`hean_desk.client.DeskClient` reads and changes TradingEngines with the user's
own kubeconfig (identity and RBAC): the objects through the API server, the
engines' reports and history through its pod proxy. `hean_desk.views` holds
what it returns, `hean_desk.render` how the plugin prints it.
"""
