package app
var debugSim = false
