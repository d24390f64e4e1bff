GREETING = "setuptools-demo says hello"
