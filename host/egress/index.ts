export * from "./address-class.js";
export * from "./connect-parser.js";
export * from "./log.js";
export * from "./metrics.js";
export * from "./policy.js";
export * from "./proxy.js";
