using Hal.Parallel.Mesh;

namespace Hal.Models.Training;

// Legend: dp replicas, tp tensor-parallel ranks, sp sequence-parallel ranks; a replica of a parameter (or of a tp
// shard of one) is a rank that holds the same values of it.

public static partial class Trainer
{
    /// <summary>
    /// The ranks that average a rank's gradients on the plain path (null: nothing to average). Without a mesh every
    /// rank is a replica (the world); under sp the replicas of a tp shard are the dp × sp ranks sharing its tp
    /// coordinate (the mesh's replica group, the world when tp is 1): each holds a share of its replica's gradient,
    /// scaled by sp so that their average is the dp mean; under tp alone they are the dp group.
    /// </summary>
    private static ICommunicator? GradientReplicas(TrainConfig config, DeviceMesh? mesh, ICommunicator? world)
    {
        if (mesh is null)
        {
            return world;
        }
        if (config.Sp > 1)
        {
            return config.Tp > 1 ? mesh.ReplicaGroup : world;
        }
        return mesh.Dp > 1 ? mesh.DpGroup : null;
    }
}
