package synthetic

// StatLoss exposes statLoss to the tests.
var StatLoss = statLoss
