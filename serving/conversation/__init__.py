"""What only `Reader.ask` uses: intent + entity extraction (gazetteer or the ONNX decoder) and the answer builder."""
