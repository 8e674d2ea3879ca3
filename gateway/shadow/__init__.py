"""Shadow traffic: copies of sampled requests sent to other variants off the request path, their
answers compared with the primary's output by output, counted, and never shown to the client."""
