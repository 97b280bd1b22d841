/**
 * The sample worker (src/train/feeder.ts): rebuilds the training source from its {@link SourceSpec} once,
 * then makes one sample per request, `makeKeyedSample(source.get(index), key)` exactly as the main thread
 * would, and answers it with its arrays transferred.
 *
 * @module
 */
import { makeKeyedSample, type PlrcSample, sampleBuffers } from "./batch.ts";
import { serveThread } from "./threads.ts";
import { sourceFromSpec } from "../train/sources.ts";
import type { SampleInit, SampleRequest } from "../train/feeder.ts";

serveThread<SampleInit, SampleRequest, PlrcSample>(({ spec, data }) => {
  const source = sourceFromSpec(spec);
  return async ({ index, key }) => {
    const sample = makeKeyedSample({ ...(await source.get(index)), key }, data);
    return { result: sample, transfer: sampleBuffers(sample) };
  };
});
