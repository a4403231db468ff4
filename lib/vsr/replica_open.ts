// The startup sequence over any Storage (the data file, or the simulator): superblock quorum read,
// then WAL recovery, with the journal and superblock built around the replica's storage listener
// so that their later completions reach the replica. The checkpoint restore and the WAL replay
// follow in Replica.open(). Startup only: allocates and awaits.
import type { Storage } from '../storage/storage';
import { StorageRefusal } from '../storage/storage';
import { Journal } from '../storage/journal';
import { SuperBlock } from '../storage/superblock';
import { ReplicaStorageListener } from './replica';

export interface ReplicaStorage {
    listener: ReplicaStorageListener;
    superblock: SuperBlock;
    journal: Journal;
}

export async function replica_storage_open(storage: Storage): Promise<ReplicaStorage> {
    const listener = new ReplicaStorageListener();
    const superblock = new SuperBlock(storage, listener);
    superblock.open();
    await listener.startup.wait(storage);
    if (superblock.storage_size !== storage.layout.total_size_bytes) {
        throw new StorageRefusal('superblock', -1, -1,
            `the file was formatted for ${superblock.storage_size} bytes of zones, this ` +
            `configuration needs ${storage.layout.total_size_bytes}: pass the --clients-max ` +
            'it was formatted with');
    }
    const journal = new Journal(storage, listener, superblock.cluster_bytes(),
        superblock.replica_count);
    journal.recover();
    await listener.startup.wait(storage);
    return { listener, superblock, journal };
}
