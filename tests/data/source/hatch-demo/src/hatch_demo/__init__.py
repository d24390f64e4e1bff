GREETING = "hatch-demo says hello"
