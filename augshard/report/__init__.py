"""`augshard report`: the HTML page, its model, its charts and its evaluation section."""
