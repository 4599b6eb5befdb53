// Test support (tests/examples/test_resource_server_node.py): loaded with `node --import`, it
// moves the process's clock CLOCK_OFFSET_SECONDS ahead, so an unmodified example sees a
// token that is valid now as the expired token it will be later.
const offset = Number(process.env.CLOCK_OFFSET_SECONDS ?? 0) * 1000;
const RealDate = Date;
class ShiftedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(RealDate.now() + offset);
    else super(...args);
  }
  static now() {
    return RealDate.now() + offset;
  }
}
globalThis.Date = ShiftedDate;
