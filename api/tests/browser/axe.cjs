// axe-core's results, as the tests compare them: each violation's rule, impact and first
// targets.
exports.summarize = (results) =>
  results.violations.map((violation) => ({
    id: violation.id,
    impact: violation.impact,
    help: violation.help,
    targets: violation.nodes.map((node) => node.target.join(" ")).slice(0, 5),
  }));
