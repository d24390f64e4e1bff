GREETING = "poetry-demo says hello"
