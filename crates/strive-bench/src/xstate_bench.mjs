// XState v5 `actor.send` on a six-state machine with a guard and an assign:
// the same cycle as strive's bench workflow (crates/strive-bench/src/fixture.rs).
// Usage: node xstate_bench.mjs <milliseconds>; prints {"ops_per_s": ...}.
import { assign, createActor, createMachine } from 'xstate';

const budgetMs = Number(process.argv[2] ?? 1000);
const stages = ['s0', 's1', 's2', 's3', 's4'];
const states = {};
stages.forEach((stage, index) => {
  states[stage] = {
    on: {
      NEXT: {
        target: stages[(index + 1) % stages.length],
        guard: ({ context }) => context.count < 1_000_000_000,
        actions: assign({ count: ({ context, event }) => context.count + event.amount }),
      },
      CLOSE: { target: 'closed' },
    },
  };
});
states.closed = { type: 'final' };

const machine = createMachine({
  id: 'bench',
  initial: 's0',
  context: { count: 0, owner: 'owner of order-00000042' },
  states,
});
const actor = createActor(machine).start();
const event = { type: 'NEXT', amount: 1 };

// Warm up the JIT before measuring.
for (let i = 0; i < 50_000; i++) actor.send(event);

const limit = BigInt(budgetMs) * 1_000_000n;
const start = process.hrtime.bigint();
let sent = 0;
let elapsed = 0n;
do {
  for (let i = 0; i < 1000; i++) actor.send(event);
  sent += 1000;
  elapsed = process.hrtime.bigint() - start;
} while (elapsed < limit);

const seconds = Number(elapsed) / 1e9;
const snapshot = actor.getSnapshot();
if (snapshot.context.count !== sent + 50_000) {
  throw new Error(`guard or assign misbehaved: count ${snapshot.context.count}`);
}
console.log(JSON.stringify({ ops_per_s: sent / seconds, sent, seconds }));
