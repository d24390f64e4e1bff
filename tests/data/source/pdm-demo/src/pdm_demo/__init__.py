GREETING = "pdm-demo says hello"
